# core/nn's sequence ops (layer norm, embedding, add, GLU, attention, reshape, token mean; label
# unit). TP_SEQ_BENCH=1 in the environment adds a timing run of attention and layer norm.
tp_add_test(test_nn_seq SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_nn_seq.c LABEL unit TIMEOUT 60)

# core/nn image ops (conv.h): gradients against finite differences, forward references, batch
# norm statistics, errors, determinism, arena reuse, and a timing print (label unit).
tp_add_test(test_nn_conv SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_nn_conv.c
  LABEL unit TIMEOUT 60)

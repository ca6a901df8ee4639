# kjv_lm: the text normalisation, the split by book, and the model on a tiny generated text
# (label unit); its real-text test skips when Debian's bible-kjv is not installed.
tp_add_test(test_kjv_lm SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_kjv_lm.c
  ${CMAKE_CURRENT_SOURCE_DIR}/support/tp_wltest.c LABEL unit TIMEOUT 120)

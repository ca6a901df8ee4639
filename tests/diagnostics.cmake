# Training-dynamics diagnostics: Lanczos (core/lanczos.c).
tp_add_test(test_lanczos SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_lanczos.c
  LABEL unit TIMEOUT 60)

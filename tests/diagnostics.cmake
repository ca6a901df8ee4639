# Training-dynamics diagnostics: Lanczos (core/lanczos.c), Hessian-vector products
# (core/hessian.c), (preconditioned) sharpness (core/sharpness.c).
tp_add_test(test_lanczos SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_lanczos.c
  LABEL unit TIMEOUT 60)
tp_add_test(test_hessian SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_hessian.c
  LABEL unit TIMEOUT 60)
tp_add_test(test_sharpness SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sharpness.c
  LABEL unit TIMEOUT 60)

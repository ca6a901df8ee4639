# core/nn engine and the workloads built on it (label unit). The fmnist_mlp test reads the real
# Fashion-MNIST files (small subsets) and skips its data tests when they are not installed.
tp_add_test(test_nn_ops SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_nn_ops.c
  LABEL unit TIMEOUT 30)
tp_add_test(test_nn_fmnist_mlp SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_fmnist_mlp.c
  ${CMAKE_CURRENT_SOURCE_DIR}/support/tp_wltest.c LABEL unit TIMEOUT 60)
tp_add_test(test_nn_idx SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_nn_idx.c
  LABEL unit TIMEOUT 30)

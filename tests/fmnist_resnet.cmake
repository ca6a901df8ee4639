# The fmnist_resnet workload (label unit): reads the real Fashion-MNIST files (tests skip with a
# message when dataset-fashion-mnist is not installed); tiny networks, small subsets.
tp_add_test(test_fmnist_resnet SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_fmnist_resnet.c
  ${CMAKE_CURRENT_SOURCE_DIR}/support/tp_wltest.c LABEL unit TIMEOUT 600)

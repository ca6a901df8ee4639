# The fmnist_vit workload (label unit): tensor tables, init, options, patchify, whole-model
# gradients of every variant against finite differences, determinism, dropout, a short run.
# Reads the real Fashion-MNIST files (skips when dataset-fashion-mnist is missing).
tp_add_test(test_fmnist_vit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_fmnist_vit.c
  ${CMAKE_CURRENT_SOURCE_DIR}/support/tp_wltest.c LABEL unit TIMEOUT 600)

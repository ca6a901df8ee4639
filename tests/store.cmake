# Config files and the results store (core/config.c, core/results.c).
tp_add_test(test_config SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config.c
  LABEL unit TIMEOUT 60)
tp_add_test(test_results SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_results.c
  LABEL unit TIMEOUT 60)

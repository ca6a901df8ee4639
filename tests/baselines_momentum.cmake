# The momentum, Nesterov, NAdamW and LAMB baselines, dlopen()ed directly and driven through the
# mock host (tests/unit/test_baselines_host.c), and their search-space and sweep files read with
# the project's own readers.
tp_add_test(test_baselines_momentum
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_momentum.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_host.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/baselines_checks.c
  LABEL unit TIMEOUT 60
  LIBS ${CMAKE_DL_LIBS} ${MATH_LIB})
# The test opens the .so files, so they must be built first.
add_dependencies(test_baselines_momentum momentum nadamw lamb schedules)

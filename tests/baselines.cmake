# The baseline submissions and the minimal example, dlopen()ed directly and driven through a
# mock host (tests/unit/test_baselines_host.c); no dependency on the plugin loader.
tp_add_test(test_baselines
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_host.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/baselines_checks.c
  LABEL unit TIMEOUT 60
  LIBS ${CMAKE_DL_LIBS} ${MATH_LIB})
# The test opens the .so files, so they must be built first.
add_dependencies(test_baselines sgd adamw schedules next_batch example_minimal)

# The baselines' search spaces and self-tuning configs, read with the project's readers and
# checked against BENCHMARK.md section 7 and the plugins' declarations.
tp_add_test(test_baselines_spaces
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_spaces.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_host.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/baselines_checks.c
  LABEL unit TIMEOUT 60
  LIBS ${CMAKE_DL_LIBS} ${MATH_LIB})
add_dependencies(test_baselines_spaces sgd adamw momentum nadamw lamb adafactor sam shampoo rmsprop
  schedule_free_adamw schedules)

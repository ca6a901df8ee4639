# Schedule-Free AdamW, online batch selection and the schedules warmup_linear / inverse_sqrt,
# dlopen()ed directly and driven through the mock host (tests/unit/test_baselines_host.c).
tp_add_test(test_baselines_sf
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_sf.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_host.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/baselines_checks.c
  LABEL unit TIMEOUT 60
  LIBS ${CMAKE_DL_LIBS} ${MATH_LIB})
# The test opens the .so files, so they must be built first.
add_dependencies(test_baselines_sf schedules schedule_free_adamw online_batch_selection)

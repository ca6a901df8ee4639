# The Shampoo baseline (submissions/shampoo), dlopen()ed directly and driven through the mock
# host (tests/unit/test_baselines_host.c) against a dense double-precision Shampoo written in
# the test, with its own Jacobi eigensolver; also its search space through core/searchspace.
tp_add_test(test_baselines_shampoo
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_shampoo.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_host.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/baselines_checks.c
  LABEL unit TIMEOUT 60
  LIBS ${CMAKE_DL_LIBS} ${MATH_LIB})
# The test opens the .so files, so they must be built first.
add_dependencies(test_baselines_shampoo shampoo schedules)

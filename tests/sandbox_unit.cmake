# The worker's sandbox module on its own (core/sandbox.c): allowed work, each denied call and
# its report, the limits, the out-of-memory record. Each case runs in a forked child. The
# hostile-plugin suite with whole trials is tests/sandbox.cmake.
tp_add_test(test_sandbox_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sandbox.c
  LABEL sandbox TIMEOUT 60)

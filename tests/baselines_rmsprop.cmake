# The RMSProp baseline, dlopen()ed directly and driven through the mock host
# (tests/unit/test_baselines_host.c), with AdamW beside it: RMSProp is AdamW at beta1 = 0.
tp_add_test(test_baselines_rmsprop
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_rmsprop.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_baselines_host.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/baselines_checks.c
  LABEL unit TIMEOUT 60
  LIBS ${CMAKE_DL_LIBS} ${MATH_LIB})
# The test opens the .so files, so they must be built first.
add_dependencies(test_baselines_rmsprop rmsprop adamw)

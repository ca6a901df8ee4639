# End-to-end: the real trainperf and trainperf-worker binaries, real plugins, real data.
tp_add_plugin(fixture_crash_update
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/fixtures/crash_update.c
  OUTPUT_DIR ${CMAKE_BINARY_DIR}/tests/e2e_fixtures)
set_target_properties(fixture_crash_update PROPERTIES OUTPUT_NAME crash_update)
tp_add_test(test_e2e SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_e2e.c
  LABEL integration TIMEOUT 300)
target_compile_definitions(test_e2e PRIVATE
  TP_E2E_FIXTURE="${CMAKE_BINARY_DIR}/tests/e2e_fixtures/crash_update.so")
add_dependencies(test_e2e trainperf trainperf-worker fixture_crash_update sgd adamw schedules
  next_batch)

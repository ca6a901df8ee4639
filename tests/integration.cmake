# End-to-end: the real trainperf and trainperf-worker binaries, real plugins, real data.
set(TP_E2E_FIXTURE_DIR ${CMAKE_BINARY_DIR}/tests/e2e_fixtures)
foreach(fixture IN ITEMS crash_update hang_update)
  tp_add_plugin(fixture_${fixture}
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/fixtures/${fixture}.c
    OUTPUT_DIR ${TP_E2E_FIXTURE_DIR})
  set_target_properties(fixture_${fixture} PROPERTIES OUTPUT_NAME ${fixture})
endforeach()
tp_add_test(test_e2e SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_e2e.c
  LABEL integration TIMEOUT 300)
target_compile_definitions(test_e2e PRIVATE TP_E2E_FIXTURE_DIR="${TP_E2E_FIXTURE_DIR}")
add_dependencies(test_e2e trainperf trainperf-worker fixture_crash_update fixture_hang_update
  sgd adamw schedules next_batch)

tp_add_test(test_sweep SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_sweep.c
  LABEL integration TIMEOUT 300)
target_link_libraries(test_sweep PRIVATE PkgConfig::SQLITE)
add_dependencies(test_sweep trainperf trainperf-worker sgd adamw schedules next_batch)

tp_add_test(test_resume SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_resume.c
  LABEL integration TIMEOUT 300)
target_link_libraries(test_resume PRIVATE PkgConfig::SQLITE)
add_dependencies(test_resume trainperf trainperf-worker sgd adamw schedules next_batch)

# Every baseline trains fmnist_mlp to a loose target from its search space's first point.
tp_add_test(test_baselines_train SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_baselines_train.c
  LABEL integration TIMEOUT 300)
target_link_libraries(test_baselines_train PRIVATE PkgConfig::SQLITE)
add_dependencies(test_baselines_train trainperf trainperf-worker sgd adamw momentum nadamw lamb
  adafactor sam shampoo schedule_free_adamw schedules next_batch online_batch_selection)

# The fast Edge of Stability reproduction: `trainperf sharpness` with sgd and adamw.
tp_add_test(test_edge_of_stability
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_edge_of_stability.c
  LABEL integration TIMEOUT 300)
add_dependencies(test_edge_of_stability trainperf trainperf-worker sgd adamw next_batch)

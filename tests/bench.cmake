# Speed comparisons (tests/bench/): built so they never rot, never run by ctest.
add_executable(bench_step ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_step.c)
target_link_libraries(bench_step PRIVATE tp_core)
target_compile_options(bench_step PRIVATE ${TP_WARNINGS})
target_compile_definitions(bench_step PRIVATE
  TP_BENCH_PLUGIN_DIR="${TP_PLUGIN_DIR}" TP_BENCH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
set_target_properties(bench_step PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)

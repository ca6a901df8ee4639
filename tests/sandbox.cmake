# The hostile-submission suite (tests/sandbox/): fixture plugins that crash, hang, escape,
# lie or abuse the host API, one sweep over all of them beside a good submission, and the
# host's failure classification against fake workers.
set(TP_SANDBOX_FIXTURE_DIR ${CMAKE_BINARY_DIR}/tests/sandbox_fixtures)
set(TP_SANDBOX_SRC ${CMAKE_CURRENT_SOURCE_DIR}/sandbox)

# One optimizer source, built once per act (hostile_optimizer.c lists them); the plugin id is
# the act's name, the file hostile_<act>.so.
set(TP_HOSTILE_ACTS segv_init segv_update abort exit error loop sleep alloc fork open_passwd
  open_db open_dataset socket exec garbage nan complete0 huge_desc)
set(TP_SANDBOX_FIXTURES)
foreach(act IN LISTS TP_HOSTILE_ACTS)
  set(target sandbox_fixture_${act})
  tp_add_plugin(${target} SOURCES ${TP_SANDBOX_SRC}/hostile_optimizer.c
    OUTPUT_DIR ${TP_SANDBOX_FIXTURE_DIR})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME hostile_${act})
  string(TOUPPER ${act} ACT)
  if(act STREQUAL "huge_desc")
    target_compile_definitions(${target} PRIVATE HOSTILE_ACT=ACT_NONE HOSTILE_ID="${act}"
      HUGE_DESC)
  else()
    target_compile_definitions(${target} PRIVATE HOSTILE_ACT=ACT_${ACT} HOSTILE_ID="${act}")
  endif()
  list(APPEND TP_SANDBOX_FIXTURES ${target})
endforeach()
foreach(fixture IN ITEMS hostile_select bad_args)
  tp_add_plugin(sandbox_fixture_${fixture} SOURCES ${TP_SANDBOX_SRC}/${fixture}.c
    OUTPUT_DIR ${TP_SANDBOX_FIXTURE_DIR})
  set_target_properties(sandbox_fixture_${fixture} PROPERTIES OUTPUT_NAME ${fixture})
  list(APPEND TP_SANDBOX_FIXTURES sandbox_fixture_${fixture})
endforeach()

tp_add_test(test_sandbox SOURCES ${TP_SANDBOX_SRC}/test_sandbox.c LABEL sandbox TIMEOUT 300)
target_link_libraries(test_sandbox PRIVATE PkgConfig::SQLITE)
target_compile_definitions(test_sandbox PRIVATE
  TP_SANDBOX_FIXTURE_DIR="${TP_SANDBOX_FIXTURE_DIR}")
add_dependencies(test_sandbox trainperf trainperf-worker adamw next_batch ${TP_SANDBOX_FIXTURES})

tp_add_test(test_runner_reasons SOURCES ${TP_SANDBOX_SRC}/test_runner_reasons.c LABEL sandbox
  TIMEOUT 120)

# The plugin loader (core/plugin.c, core/check.c) and SDK compatibility: fixture plugins as
# MODULE targets, the loader test and the compat test, label `sdk`.
set(TP_LOADER_FIXTURE_DIR ${CMAKE_BINARY_DIR}/tests/sdk_fixtures)

# The good fixture: an optimizer, a schedule and a data selection that record their arguments.
tp_add_plugin(loader_good SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/sdk/fixtures/good.c
              OUTPUT_DIR ${TP_LOADER_FIXTURE_DIR})
set(TP_LOADER_FIXTURES loader_good)

# One refuse_<case>.so per case of sdk/fixtures/refuse.c (dup_other, other_sched and huge are
# accepted on their own).
set(TP_REFUSE_CASES nosym empty endless major minor small huge null_id bad_id long_id kind
    missing wrong_kind dup_id dup_other other_sched hp_twice hp_name hp_null_name hp_small
    hp_stride hp_null hp_nan hp_inverted hp_default hp_type hp_int multi)
foreach(case IN LISTS TP_REFUSE_CASES)
  string(TOUPPER ${case} CASE)
  tp_add_plugin(refuse_${case} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/sdk/fixtures/refuse.c
                OUTPUT_DIR ${TP_LOADER_FIXTURE_DIR})
  target_compile_definitions(refuse_${case} PRIVATE FIXTURE_${CASE})
  list(APPEND TP_LOADER_FIXTURES refuse_${case})
endforeach()

tp_add_test(test_loader SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/sdk/test_loader.c LABEL sdk
            TIMEOUT 60)
target_compile_definitions(test_loader PRIVATE TP_FIXTURE_DIR="${TP_LOADER_FIXTURE_DIR}")
add_dependencies(test_loader ${TP_LOADER_FIXTURES})

# SDK compatibility: one fixture per frozen header, built against that header only (not
# trainperf_sdk), which the current host must keep loading and calling.
set(TP_COMPAT_VERSIONS 1.0 1.1)
set(TP_COMPAT_FIXTURES)
foreach(v IN LISTS TP_COMPAT_VERSIONS)
  string(REPLACE "." "_" vname ${v})
  add_library(compat_v${vname} MODULE ${CMAKE_CURRENT_SOURCE_DIR}/compat/v${v}/plugin.c)
  target_include_directories(compat_v${vname} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/compat/v${v})
  target_compile_options(compat_v${vname} PRIVATE ${TP_WARNINGS} -fvisibility=hidden)
  if(NOT TP_SANITIZE)
    target_link_options(compat_v${vname} PRIVATE -Wl,--no-undefined)
  endif()
  set_target_properties(compat_v${vname} PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY
                        ${TP_LOADER_FIXTURE_DIR})
  list(APPEND TP_COMPAT_FIXTURES compat_v${vname})
endforeach()

tp_add_test(test_compat SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/compat/test_compat.c LABEL sdk
            TIMEOUT 60)
target_compile_definitions(test_compat PRIVATE TP_FIXTURE_DIR="${TP_LOADER_FIXTURE_DIR}")
add_dependencies(test_compat ${TP_COMPAT_FIXTURES})

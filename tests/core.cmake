# Host and worker modules of core/ (timing rules, events, end to end).
tp_add_test(test_trial SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_trial.c LABEL unit TIMEOUT 30)
tp_add_test(test_events SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_events.c LABEL unit TIMEOUT 30)
tp_add_test(test_hostapi SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_hostapi.c LABEL unit TIMEOUT 30)
tp_add_test(test_spec SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_spec.c LABEL unit TIMEOUT 30)

# Scoring (core/score.c) and AlgoPerf's trial directory layout (core/algoperf_io.c).
tp_add_test(test_score SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_score.c
  LABEL unit TIMEOUT 60)
tp_add_test(test_algoperf_io SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_algoperf_io.c
  LABEL unit TIMEOUT 60)

# Search spaces and the quasi-random search (core/searchspace.c, core/mt19937.c), against
# fixtures written by tests/tools/halton_reference.py under tests/data/searchspace/.
tp_add_test(test_searchspace SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_searchspace.c
  LABEL unit TIMEOUT 60)

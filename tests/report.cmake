# Reports (core/report.c): the performance-profile plot (SVG, PNG), the HTML report and the
# terminal score table.
tp_add_test(test_report SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_report.c
  LABEL unit TIMEOUT 60)

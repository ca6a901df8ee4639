# kjv_lm: its sources (workloads/CMakeLists.txt includes every <family>/workload.cmake).
tp_add_workload(kjv_lm SOURCES kjv_lm/kjv_lm.c)

# fmnist_mlp: its sources (workloads/CMakeLists.txt includes every <family>/workload.cmake).
tp_add_workload(fmnist_mlp SOURCES fmnist_mlp/fmnist_mlp.c)

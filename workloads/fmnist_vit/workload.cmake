# fmnist_vit: its sources (workloads/CMakeLists.txt includes every <family>/workload.cmake).
tp_add_workload(fmnist_vit SOURCES fmnist_vit/fmnist_vit.c)

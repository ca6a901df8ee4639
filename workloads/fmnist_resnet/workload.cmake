# fmnist_resnet: its sources (workloads/CMakeLists.txt includes every <family>/workload.cmake).
tp_add_workload(fmnist_resnet SOURCES fmnist_resnet/fmnist_resnet.c)

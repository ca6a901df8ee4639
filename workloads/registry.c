/* placeholder: being written */
typedef int tp__placeholder_workloads_registry_c;

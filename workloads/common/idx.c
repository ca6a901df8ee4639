/* placeholder: being written */
typedef int tp__placeholder_workloads_common_idx_c;

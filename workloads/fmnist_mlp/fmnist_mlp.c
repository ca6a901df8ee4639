/* placeholder: being written */
typedef int tp__placeholder_workloads_fmnist_mlp_fmnist_mlp_c;

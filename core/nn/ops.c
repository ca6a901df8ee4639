/* placeholder: being written */
typedef int tp__placeholder_core_nn_ops_c;

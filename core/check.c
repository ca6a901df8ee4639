/* placeholder: being written */
typedef int tp__placeholder_core_check_c;

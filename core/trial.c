/* placeholder: being written */
typedef int tp__placeholder_core_trial_c;

/* placeholder: being written */
typedef int tp__placeholder_submissions_adamw_adamw_c;

/* placeholder: being written */
typedef int tp__placeholder_submissions_sgd_sgd_c;

/* placeholder: being written */
typedef int tp__placeholder_examples_minimal_submission_my_sgd_c;

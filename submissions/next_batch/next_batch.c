/* placeholder: being written */
typedef int tp__placeholder_submissions_next_batch_next_batch_c;

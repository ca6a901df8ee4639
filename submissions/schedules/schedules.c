/* placeholder: being written */
typedef int tp__placeholder_submissions_schedules_schedules_c;

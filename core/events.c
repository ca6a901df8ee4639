/* placeholder: being written */
typedef int tp__placeholder_core_events_c;

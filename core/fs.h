/*
 * fs.h - file-system helpers shared by core modules.
 */
#ifndef TP_CORE_FS_H
#define TP_CORE_FS_H

#include <stddef.h>

/* mkdir -p: create path and its missing parents (mode 0777 less the umask). An existing path is
 * fine whatever it is; callers that need a directory check it. TP_EIO with "cannot create
 * directory <component>: <reason>", TP_EINVAL for a path longer than PATH_MAX. */
int tp__fs_mkdir_p(const char *path, char *err, size_t errlen);

#endif /* TP_CORE_FS_H */

/* An LD_PRELOAD library that makes the disk fail under a directory, for the I/O fault
 * tests: MEMSYNC_FAULT_DIR names the directory, MEMSYNC_FAULT the fault:
 *   enospc   every write after the first MEMSYNC_FAULT_AFTER writes fails: disk full
 *   eio      every fsync and fdatasync fails with EIO
 *   erofs    every open for writing fails with EROFS: a read-only file system
 * Files outside the directory, and everything when the variables are unset, are left
 * alone. Built by the tests with the system's C compiler. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static long writes_done = 0;

static const char *fault(void) { return getenv("MEMSYNC_FAULT"); }

static int under_dir_path(const char *path) {
    const char *dir = getenv("MEMSYNC_FAULT_DIR");
    if (!dir || !path) return 0;
    return strncmp(path, dir, strlen(dir)) == 0;
}

static int under_dir_fd(int fd) {
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    return under_dir_path(target);
}

static int full_now(int fd) {
    const char *f = fault();
    if (!f || strcmp(f, "enospc") != 0 || !under_dir_fd(fd)) return 0;
    const char *after = getenv("MEMSYNC_FAULT_AFTER");
    long allowed = after ? atol(after) : 0;
    return writes_done++ >= allowed;
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*sync_fn)(int);
typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
#define REAL(name, type) static type real_##name; if (!real_##name) real_##name = (type)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write, write_fn);
    if (full_now(fd)) { errno = ENOSPC; return -1; }
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite, pwrite_fn);
    if (full_now(fd)) { errno = ENOSPC; return -1; }
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite64, pwrite_fn);
    if (full_now(fd)) { errno = ENOSPC; return -1; }
    return real_pwrite64(fd, buf, count, offset);
}

static int sync_fails(int fd) {
    const char *f = fault();
    return f && strcmp(f, "eio") == 0 && under_dir_fd(fd);
}

int fsync(int fd) {
    REAL(fsync, sync_fn);
    if (sync_fails(fd)) { errno = EIO; return -1; }
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync, sync_fn);
    if (sync_fails(fd)) { errno = EIO; return -1; }
    return real_fdatasync(fd);
}

static int refuse_open(const char *path, int flags) {
    const char *f = fault();
    return f && strcmp(f, "erofs") == 0 && under_dir_path(path) &&
           ((flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT));
}

int open(const char *path, int flags, ...) {
    REAL(open, open_fn);
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); }
    if (refuse_open(path, flags)) { errno = EROFS; return -1; }
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    REAL(open64, open_fn);
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); }
    if (refuse_open(path, flags)) { errno = EROFS; return -1; }
    return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    REAL(openat, openat_fn);
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); }
    if (path[0] == '/' && refuse_open(path, flags)) { errno = EROFS; return -1; }
    return real_openat(dirfd, path, flags, mode);
}

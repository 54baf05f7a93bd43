/*
 * iotrace: an LD_PRELOAD shim the journal tests build with the system C compiler (it is
 * test tooling, not part of the library). It wraps the libc calls the journal's real file
 * backend makes and, for files under $IOTRACE_DIR, appends one line per completed call to
 * $IOTRACE_OUT:
 *
 *   C path                    open with O_CREAT succeeded     U path        unlink
 *   W path off len hex        write/pwrite wrote len bytes     R old new     rename
 *   T path len                ftruncate                        F path off len  fallocate
 *   S path                    fsync/fdatasync of a file        D path        fsync of a dir
 *   A text                    a write to stdout (the fixture's acknowledgements)
 *
 * Lines are written whole under one mutex, after the real call returns, so the trace is
 * the order in which calls completed. $IOTRACE_FAULT = "op:nth:errno" makes the nth
 * traced call of op (write, sync, fallocate, rename) fail with errno without doing it;
 * errno 0 means a short write (half the bytes). Only the first fault fires.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int out_fd = -1;
static int fault_fired;

static void emit(const char *buf, size_t len) {
    if (out_fd < 0) {
        const char *out = getenv("IOTRACE_OUT");
        if (!out) return;
        out_fd = (int)syscall(SYS_openat, AT_FDCWD, out,
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (out_fd < 0) return;
    }
    while (len > 0) {
        long n = syscall(SYS_write, out_fd, buf, len);
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

/* The path of fd if it is under $IOTRACE_DIR, else 0. */
static int traced_fd(int fd, char *path, size_t cap) {
    const char *dir = getenv("IOTRACE_DIR");
    char link[64];
    if (!dir) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, cap - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strncmp(path, dir, strlen(dir)) == 0;
}

static int traced_path(const char *p) {
    const char *dir = getenv("IOTRACE_DIR");
    return dir && p && strncmp(p, dir, strlen(dir)) == 0;
}

/* Returns the errno to inject for this call of op (-1: none; 0: short write). */
static int fault(const char *op) {
    static int counts[4];
    static const char *ops[4] = {"write", "sync", "fallocate", "rename"};
    const char *spec = getenv("IOTRACE_FAULT");
    char name[16];
    int nth, err, i;
    for (i = 0; i < 4 && strcmp(ops[i], op) != 0; i++) {}
    if (i == 4) return -1;
    counts[i]++;
    if (!spec || fault_fired || sscanf(spec, "%15[^:]:%d:%d", name, &nth, &err) != 3) return -1;
    if (strcmp(name, op) != 0 || counts[i] != nth) return -1;
    fault_fired = 1;
    return err;
}

static void line(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) emit(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void emit_write(const char *path, long long off, const void *data, size_t len) {
    static const char hex[] = "0123456789abcdef";
    char *buf = malloc(len * 2 + 1);
    if (!buf) return;
    for (size_t i = 0; i < len; i++) {
        buf[2 * i] = hex[((const unsigned char *)data)[i] >> 4];
        buf[2 * i + 1] = hex[((const unsigned char *)data)[i] & 15];
    }
    line("W %s %lld %zu ", path, off, len);
    emit(buf, len * 2);
    emit("\n", 1);
    free(buf);
}

#define REAL(name, ret, ...) \
    static ret (*real)(__VA_ARGS__); \
    if (!real) real = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, name)

int open64(const char *path, int flags, ...) {
    REAL("open64", int, const char *, int, ...);
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    int fd = real(path, flags, mode);
    if (fd >= 0 && (flags & O_CREAT) && traced_path(path)) {
        pthread_mutex_lock(&lock);
        line("C %s\n", path);
        if (flags & O_TRUNC) line("T %s 0\n", path);
        pthread_mutex_unlock(&lock);
    }
    return fd;
}

static ssize_t traced_write(int fd, const void *buf, size_t len, long long off, int positioned) {
    REAL("write", ssize_t, int, const void *, size_t);
    static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
    if (!real_pwrite) real_pwrite = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    char path[4096];
    if (fd == 1) {
        ssize_t n = real(fd, buf, len);
        if (n > 0) {
            pthread_mutex_lock(&lock);
            emit("A ", 2);
            emit(buf, (size_t)n);
            if (((const char *)buf)[n - 1] != '\n') emit("\n", 1);
            pthread_mutex_unlock(&lock);
        }
        return n;
    }
    if (!traced_fd(fd, path, sizeof path))
        return positioned ? real_pwrite(fd, buf, len, off) : real(fd, buf, len);
    pthread_mutex_lock(&lock);
    int err = fault("write");
    if (err > 0) {
        pthread_mutex_unlock(&lock);
        errno = err;
        return -1;
    }
    if (err == 0 && len > 1) len /= 2;
    if (!positioned) off = lseek(fd, 0, SEEK_CUR);
    ssize_t n = positioned ? real_pwrite(fd, buf, len, off) : real(fd, buf, len);
    int saved = errno;
    if (n > 0) emit_write(path, off, buf, (size_t)n);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return n;
}

ssize_t write(int fd, const void *buf, size_t len) { return traced_write(fd, buf, len, 0, 0); }
ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off) {
    return traced_write(fd, buf, len, off, 1);
}

static int traced_sync(int fd, const char *name) {
    static int (*real_fsync)(int), (*real_fdatasync)(int);
    if (!real_fsync) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (!real_fdatasync) real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int (*real)(int) = strcmp(name, "fsync") == 0 ? real_fsync : real_fdatasync;
    char path[4096];
    if (!traced_fd(fd, path, sizeof path)) return real(fd);
    struct stat st;
    int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    pthread_mutex_lock(&lock);
    int err = is_dir ? -1 : fault("sync");
    pthread_mutex_unlock(&lock);
    if (err > 0) {
        errno = err;
        return -1;
    }
    int r = real(fd);
    int saved = errno;
    if (r == 0) {
        pthread_mutex_lock(&lock);
        line("%c %s\n", is_dir ? 'D' : 'S', path);
        pthread_mutex_unlock(&lock);
    }
    errno = saved;
    return r;
}

int fsync(int fd) { return traced_sync(fd, "fsync"); }
int fdatasync(int fd) { return traced_sync(fd, "fdatasync"); }

int posix_fallocate(int fd, off_t off, off_t len) {
    REAL("posix_fallocate", int, int, off_t, off_t);
    char path[4096];
    if (!traced_fd(fd, path, sizeof path)) return real(fd, off, len);
    pthread_mutex_lock(&lock);
    int err = fault("fallocate");
    if (err > 0) {
        pthread_mutex_unlock(&lock);
        return err; /* posix_fallocate returns the error number */
    }
    int r = real(fd, off, len);
    if (r == 0) line("F %s %lld %lld\n", path, (long long)off, (long long)len);
    pthread_mutex_unlock(&lock);
    return r;
}

int ftruncate64(int fd, off_t len) {
    REAL("ftruncate64", int, int, off_t);
    char path[4096];
    int traced = traced_fd(fd, path, sizeof path);
    int r = real(fd, len);
    int saved = errno;
    if (r == 0 && traced) {
        pthread_mutex_lock(&lock);
        line("T %s %lld\n", path, (long long)len);
        pthread_mutex_unlock(&lock);
    }
    errno = saved;
    return r;
}

int rename(const char *from, const char *to) {
    REAL("rename", int, const char *, const char *);
    if (!traced_path(to)) return real(from, to);
    pthread_mutex_lock(&lock);
    int err = fault("rename");
    if (err > 0) {
        pthread_mutex_unlock(&lock);
        errno = err;
        return -1;
    }
    int r = real(from, to);
    int saved = errno;
    if (r == 0) line("R %s %s\n", from, to);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return r;
}

int unlink(const char *path) {
    REAL("unlink", int, const char *);
    int r = real(path);
    int saved = errno;
    if (r == 0 && traced_path(path)) {
        pthread_mutex_lock(&lock);
        line("U %s\n", path);
        pthread_mutex_unlock(&lock);
    }
    errno = saved;
    return r;
}

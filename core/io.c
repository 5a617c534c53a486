/*
** io.c — safe file writes. See io.h.
*/
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Where a write goes: the file to replace (symbolic links resolved), its
** directory and base name, or a special file written in place. */
typedef struct {
  char *target, *dir;
  const char *base;
  int exists, special;
  mode_t mode;
} dest;

static int io_fail(const char *path, int err) {
  return eg_seterr(EG_EIO, "cannot write %s: %s", path, strerror(err));
}

static void dest_free(dest *d) {
  free(d->target);
  free(d->dir);
}

static int resolve(const char *path, dest *d) {
  memset(d, 0, sizeof *d);
  if (!path || !*path) return eg_seterr(EG_EINVAL, "cannot write: no file name");
  struct stat st;
  if (stat(path, &st) == 0) {
    d->exists = 1;
    if (S_ISDIR(st.st_mode)) return eg_seterr(EG_EIO, "cannot write %s: it is a directory", path);
    if (!S_ISREG(st.st_mode)) {
      d->special = 1;
      return EG_OK;
    }
    d->mode = st.st_mode & 07777;
    d->target = realpath(path, NULL);
    if (!d->target) return io_fail(path, errno);
  } else if (errno == ENOENT) {
    struct stat lst;
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
      return eg_seterr(EG_EIO, "cannot write %s: it is a symbolic link to nothing", path);
    d->target = strdup(path);
    if (!d->target) return eg_seterr(EG_ENOMEM, "cannot write %s: out of memory", path);
  } else {
    return io_fail(path, errno);
  }
  const char *slash = strrchr(d->target, '/');
  size_t dl = slash ? (size_t)(slash - d->target) : 0;
  d->dir = malloc(dl + 2);
  if (!d->dir) return eg_seterr(EG_ENOMEM, "cannot write %s: out of memory", path);
  if (!slash)
    strcpy(d->dir, ".");
  else if (dl == 0)
    strcpy(d->dir, "/");
  else
    memcpy(d->dir, d->target, dl), d->dir[dl] = 0;
  d->base = slash ? slash + 1 : d->target;
  return EG_OK;
}

static int write_all(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w, n -= (size_t)w;
  }
  return 0;
}

/* A name for the temporary file beside the target: DIR/.BASE.engram-XXXXXX. */
static int temp_name(const dest *d, char *buf, size_t size, unsigned attempt) {
  static unsigned counter;
  uint64_t r = (uint64_t)getpid() * 2654435761u ^ (uint64_t)time(NULL) * 40503u ^ (uint64_t)(++counter + attempt) << 20;
  int k = snprintf(buf, size, "%s/.%s.engram-%06llx", d->dir, d->base, (unsigned long long)(r & 0xffffff));
  return k > 0 && (size_t)k < size;
}

/* Opens the temporary file: unnamed (O_TMPFILE) when the file system allows
** it (*named = 0), else a new file named into `name` (*named = 1). */
static int open_temp(const dest *d, char *name, size_t size, int *named) {
  *named = 0;
#ifdef O_TMPFILE
  int fd = open(d->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (fd >= 0) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return -1;
#endif
  *named = 1;
  for (unsigned attempt = 0; attempt < 100; attempt++) {
    if (!temp_name(d, name, size, attempt)) {
      errno = ENAMETOOLONG;
      return -1;
    }
    int f = open(name, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0666);
    if (f >= 0 || errno != EEXIST) return f;
  }
  return -1;
}

/* Gives the unnamed file fd the temporary name `name` (linkat through /proc). */
static int name_temp(int fd, const dest *d, char *name, size_t size) {
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  for (unsigned attempt = 0; attempt < 100; attempt++) {
    if (!temp_name(d, name, size, attempt)) return ENAMETOOLONG;
    if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0) return 0;
    if (errno != EEXIST) return errno;
  }
  return EEXIST;
}

static void sync_dir(const char *dir) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  (void)fsync(dfd); /* some file systems refuse it (EINVAL): the rename stands */
  close(dfd);
}

static int write_special(const char *path, const void *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return io_fail(path, errno);
  int err = write_all(fd, data, n);
  if (close(fd) != 0 && !err) err = errno;
  return err ? io_fail(path, err) : EG_OK;
}

/* For tests of what a crash leaves behind (tests/lua/test_checkpoint.lua):
** ENGRAM_TEST_KILL_BEFORE_RENAME=NAME kills the process with SIGKILL when a
** file named NAME is written and flushed under its temporary name but not yet
** renamed: the worst moment for a kill. */
static void kill_point(const dest *d) {
  const char *name = getenv("ENGRAM_TEST_KILL_BEFORE_RENAME");
  if (name && strcmp(name, d->base) == 0) raise(SIGKILL);
}

int eg_write_file_atomic(const char *path, const void *data, size_t n) {
  dest d;
  int st = resolve(path, &d);
  if (st) {
    dest_free(&d);
    return st;
  }
  if (d.special) return write_special(path, data, n);
  size_t size = strlen(d.dir) + strlen(d.base) + 32;
  char *name = malloc(size);
  if (!name) {
    dest_free(&d);
    return eg_seterr(EG_ENOMEM, "cannot write %s: out of memory", path);
  }
  int named, err = 0, linked = 0;
  int fd = open_temp(&d, name, size, &named);
  if (fd < 0) err = errno;
  if (!err) err = write_all(fd, data, n);
  if (!err && d.exists && fchmod(fd, d.mode) != 0) err = errno;
  if (!err && fsync(fd) != 0) err = errno;
  if (!err && !named) {
    err = name_temp(fd, &d, name, size);
    linked = !err;
  }
  if (fd >= 0 && close(fd) != 0 && !err) err = errno;
  kill_point(&d);
  if (!err && rename(name, d.target) != 0) err = errno;
  if (err && (named || linked)) unlink(name);
  if (!err) sync_dir(d.dir);
  free(name);
  dest_free(&d);
  return err ? io_fail(path, err) : EG_OK;
}

int eg_check_writable(const char *path, size_t probe) {
  dest d;
  int st = resolve(path, &d);
  if (st) {
    dest_free(&d);
    return st;
  }
  if (d.special) {
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno != ENXIO) return io_fail(path, errno); /* ENXIO: a FIFO with no reader yet */
    if (fd >= 0) close(fd);
    return EG_OK;
  }
  int err = 0;
  if (d.exists && access(d.target, W_OK) != 0) err = errno;
  size_t size = strlen(d.dir) + strlen(d.base) + 32;
  char *name = err ? NULL : malloc(size);
  int named = 0, fd = -1;
  if (!err && !name) err = ENOMEM;
  if (!err && (fd = open_temp(&d, name, size, &named)) < 0) err = errno;
  static const char zeros[65536];
  for (size_t left = probe; !err && left > 0;) {
    size_t k = left < sizeof zeros ? left : sizeof zeros;
    err = write_all(fd, zeros, k);
    left -= k;
  }
  if (!err && fsync(fd) != 0) err = errno;
  if (fd >= 0) close(fd);
  if (fd >= 0 && named) unlink(name);
  free(name);
  dest_free(&d);
  return err ? io_fail(path, err) : EG_OK;
}

uint64_t eg_checksum64(uint64_t h, const void *data, size_t n) {
  const uint64_t prime = 0x100000001b3ULL;
  const unsigned char *p = data;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * prime;
  }
  for (; n > 0; n--, p++) h = (h ^ *p) * prime;
  return h;
}

int eg_mkdir_p(const char *path) {
  if (!path || !*path) return eg_seterr(EG_EINVAL, "mkdir: empty path");
  size_t n = strlen(path);
  char *p = malloc(n + 1);
  if (!p) return eg_seterr(EG_ENOMEM, "mkdir %s: out of memory", path);
  memcpy(p, path, n + 1);
  int err = 0;
  for (size_t i = 1; i <= n && !err; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    char c = p[i];
    p[i] = '\0';
    struct stat st;
    if (mkdir(p, 0777) != 0 && errno != EEXIST) err = errno;
    else if (stat(p, &st) != 0) err = errno;
    else if (!S_ISDIR(st.st_mode)) err = ENOTDIR;
    p[i] = c;
  }
  free(p);
  return err ? eg_seterr(EG_EIO, "cannot make directory %s: %s", path, strerror(err)) : EG_OK;
}

/*
** test_io.c — safe writes (core/io.h): a new file, a replaced one keeping its
** permission bits, a symbolic link that keeps pointing at the new file, a
** special file (/dev/null) written and not replaced, no temporary file left
** behind after success or failure, and the up-front check's answers.
*/
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "io.h"

static char dir[256];

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static int read_text(const char *path, char *buf, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t k = fread(buf, 1, n - 1, f);
  buf[k] = 0;
  fclose(f);
  return (int)k;
}

/* Entries of the test directory (temporary files would show here). */
static int entries(void) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  if (d) closedir(d);
  return n;
}

static void test_a_new_file_and_a_replaced_one_keep_no_temporary_file(void) {
  char p[512], buf[64];
  path_of(p, sizeof p, "out.json");
  CHECK_OK(eg_write_file_atomic(p, "{\"a\": 1}\n", 9));
  CHECK(read_text(p, buf, sizeof buf) == 9 && !strcmp(buf, "{\"a\": 1}\n"));
  CHECK(chmod(p, 0640) == 0);
  CHECK_OK(eg_write_file_atomic(p, "two", 3));
  CHECK(read_text(p, buf, sizeof buf) == 3 && !strcmp(buf, "two"));
  struct stat st;
  CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0640);
  CHECK(entries() == 1);
  CHECK_OK(eg_write_file_atomic(p, "", 0)); /* an empty write empties the file */
  CHECK(read_text(p, buf, sizeof buf) == 0);
  unlink(p);
}

static void test_a_symbolic_link_keeps_pointing_at_the_new_file(void) {
  char target[512], link_[512], buf[64];
  path_of(target, sizeof target, "target.json");
  path_of(link_, sizeof link_, "link.json");
  CHECK_OK(eg_write_file_atomic(target, "old", 3));
  CHECK(symlink("target.json", link_) == 0);
  CHECK_OK(eg_write_file_atomic(link_, "new", 3));
  struct stat lst;
  CHECK(lstat(link_, &lst) == 0 && S_ISLNK(lst.st_mode));
  CHECK(read_text(target, buf, sizeof buf) == 3 && !strcmp(buf, "new"));
  CHECK(entries() == 2);
  unlink(link_), unlink(target);
  /* a link to nothing is an error naming it, and nothing is created */
  CHECK(symlink("nowhere.json", link_) == 0);
  CHECK_ERR(eg_write_file_atomic(link_, "x", 1), EG_EIO);
  CHECK(strstr(eg_errmsg(), "symbolic link to nothing") != NULL);
  CHECK(entries() == 1);
  unlink(link_);
}

static void test_dev_null_is_written_and_stays_a_device(void) {
  CHECK_OK(eg_write_file_atomic("/dev/null", "results", 7));
  struct stat st;
  CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
  CHECK_OK(eg_check_writable("/dev/null", 1024));
}

static void test_failures_name_the_path_and_leave_nothing(void) {
  char p[512];
  path_of(p, sizeof p, "no/such/dir/out.json");
  CHECK_ERR(eg_write_file_atomic(p, "x", 1), EG_EIO);
  CHECK(strstr(eg_errmsg(), "cannot write") != NULL && strstr(eg_errmsg(), "no/such/dir/out.json") != NULL);
  CHECK_ERR(eg_check_writable(p, 4096), EG_EIO);
  CHECK_ERR(eg_write_file_atomic(dir, "x", 1), EG_EIO); /* a directory */
  CHECK(strstr(eg_errmsg(), "is a directory") != NULL);
  CHECK_ERR(eg_write_file_atomic("", "x", 1), EG_EINVAL);
  /* a file system that takes no new file */
  CHECK_ERR(eg_check_writable("/proc/engram-test-out.json", 16), EG_EIO);
  CHECK(entries() == 0);
}

static void test_the_check_leaves_nothing_behind(void) {
  char p[512];
  path_of(p, sizeof p, "later.json");
  CHECK_OK(eg_check_writable(p, 1 << 20));
  CHECK(entries() == 0);
  CHECK(access(p, F_OK) != 0);
}

int main(void) {
  snprintf(dir, sizeof dir, "%s/engram-io-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_a_new_file_and_a_replaced_one_keep_no_temporary_file);
  RUN(test_a_symbolic_link_keeps_pointing_at_the_new_file);
  RUN(test_dev_null_is_written_and_stays_a_device);
  RUN(test_failures_name_the_path_and_leave_nothing);
  RUN(test_the_check_leaves_nothing_behind);
  rmdir(dir);
  return CHECK_DONE("io");
}

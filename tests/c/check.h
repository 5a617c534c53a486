/*
** check.h — the C suites' tiny harness. A test is a function; CHECK records a
** failure with its line and goes on; RUN runs one test and counts it as
** passed when none of its checks failed. main ends with CHECK_DONE(), which
** prints "<suite>: N passed, N failed" (tests/run.sh adds the suites up) and
** returns non-zero on any failure.
*/
#ifndef EG_CHECK_H
#define EG_CHECK_H
#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed_, check_failed_, check_cur_failed_;
static const char *check_name_;

#define CHECK(c)                                                                      \
  do {                                                                                \
    if (!(c)) {                                                                       \
      fprintf(stderr, "  %s:%d: %s: check failed: %s\n", __FILE__, __LINE__, check_name_, #c); \
      check_cur_failed_ = 1;                                                          \
    }                                                                                 \
  } while (0)
#define CHECK_NEAR(a, b, tol)                                                          \
  do {                                                                                 \
    double a_ = (a), b_ = (b);                                                         \
    if (!(fabs(a_ - b_) <= (tol))) {                                                   \
      fprintf(stderr, "  %s:%d: %s: %s = %.9g, %s = %.9g (tol %g)\n", __FILE__, __LINE__, \
              check_name_, #a, a_, #b, b_, (double)(tol));                             \
      check_cur_failed_ = 1;                                                           \
    }                                                                                  \
  } while (0)
/* Status checks: CHECK_OK(call) expects EG_OK; CHECK_ERR(call, code) expects that code. */
#define CHECK_OK(call)                                                                  \
  do {                                                                                  \
    int st_ = (call);                                                                   \
    if (st_ != 0) {                                                                     \
      fprintf(stderr, "  %s:%d: %s: %s -> %d (%s)\n", __FILE__, __LINE__, check_name_, #call, st_, eg_errmsg()); \
      check_cur_failed_ = 1;                                                            \
    }                                                                                   \
  } while (0)
#define CHECK_ERR(call, code)                                                          \
  do {                                                                                 \
    int st_ = (call);                                                                  \
    if (st_ != (code)) {                                                               \
      fprintf(stderr, "  %s:%d: %s: %s -> %d, expected %d\n", __FILE__, __LINE__, check_name_, #call, st_, (code)); \
      check_cur_failed_ = 1;                                                           \
    }                                                                                  \
  } while (0)

#define RUN(fn)                                              \
  do {                                                       \
    check_name_ = #fn;                                       \
    check_cur_failed_ = 0;                                   \
    fn();                                                    \
    if (check_cur_failed_) {                                 \
      check_failed_++;                                       \
      fprintf(stderr, "FAIL %s\n", #fn);                     \
    } else                                                   \
      check_passed_++;                                       \
  } while (0)

#define CHECK_DONE(suite)                                                          \
  (printf("%s: %d passed, %d failed\n", (suite), check_passed_, check_failed_), \
   check_failed_ ? 1 : 0)
#endif

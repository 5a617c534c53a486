/*
** test_loss.c — losses: central-difference gradient checks for every loss,
** values computed by hand, active-class masks, accuracy, argument errors,
** and no allocation per call.
**
** Gradient checks go through gradcheck.h: the loss (a mean, in double) is
** differenced centrally with step 1e-2 max(1, |x|) in float32, and the
** analytic gradient must satisfy, per tensor, ||num - ana|| / max(||num||,
** ||ana||) <= 2e-3 and, per element, |num_i - ana_i| <= 2e-3 |num_i| + 5e-4
** max|g| — relative measures, since a mean loss's gradient entries are
** small (about 1/B); the worst unmutated check here is about 1e-5. Each
** check is also run on the gradient scaled by 1.01 and with each element
** moved by 1% of the largest magnitude, which must fail. The losses are
** smooth everywhere, so no input needs to avoid a kink.
*/
#include <stdlib.h>

#include "check.h"
#include "gradcheck.h"
#include "loss.h"
#include "rng.h"

static void mk2(eg_tensor *t, int64_t a, int64_t b) {
  int64_t sh[2] = {a, b};
  eg_tensor_new(t, 2, sh);
}
static void mk1(eg_tensor *t, int64_t a) {
  int64_t sh[1] = {a};
  eg_tensor_new(t, 1, sh);
}
static void randu(eg_tensor *t, uint64_t seed, float lo, float hi) {
  eg_rng r;
  eg_rng_seed(&r, seed);
  eg_fill_uniform(t, &r, lo, hi);
}
static void setv(eg_tensor *t, const float *v) {
  for (int64_t i = 0; i < eg_numel(t); i++) eg_data(t)[i] = v[i];
}

/* One loss, seen as a function of `x` with everything else fixed. */
typedef struct {
  int kind; /* 0 CE, 1 MSE, 2 BCE, 3 KL, 4 CE with per-sample tasks */
  eg_tensor *x, *other, *active;
  double T;
  eg_tensor *tasks; /* kind 4: active holds the task masks [T, C] */
} lossfn;

static int eval(lossfn *f, double *v, eg_tensor *grad) {
  switch (f->kind) {
  case 0: return eg_cross_entropy(v, grad, f->x, f->other, f->active);
  case 1: return eg_mse(v, grad, f->x, f->other);
  case 2: return eg_bce_logits(v, grad, f->x, f->other);
  case 4: return eg_cross_entropy_tasks(v, grad, f->x, f->other, f->active, f->tasks);
  default: return eg_kl_distill(v, grad, f->x, f->other, f->T, f->active);
  }
}

static double loss_at(void *ctx) {
  double v = NAN;
  if (eval(ctx, &v, NULL) != EG_OK) fprintf(stderr, "  loss failed: %s\n", eg_errmsg());
  return v;
}

/* The analytic gradient of f with respect to its input, through the shared
** check and its mutation tests (gradcheck.h); 1 when all went as expected. */
static int grad_ok(lossfn *f, const char *what) {
  eg_tensor g = EG_TENSOR_INIT;
  eg_tensor_resize_as(&g, f->x);
  double v;
  int ok = 0;
  if (eval(f, &v, &g) != EG_OK)
    fprintf(stderr, "  %s failed: %s\n", what, eg_errmsg());
  else
    ok = gc_tensor(what, f->x, &g, loss_at, f);
  eg_tensor_release(&g);
  return ok;
}

static void test_cross_entropy_gradient_matches_finite_differences(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  mk2(&x, 5, 7);
  mk1(&y, 5);
  randu(&x, 1, -3, 3);
  setv(&y, (float[]){0, 6, 3, 3, 1});
  lossfn f = {0, &x, &y, NULL, 1, NULL};
  CHECK(grad_ok(&f, "cross_entropy"));
  eg_tensor_release(&x);
  eg_tensor_release(&y);
}

static void test_cross_entropy_with_active_classes_has_zero_gradient_elsewhere(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, a = EG_TENSOR_INIT, g = EG_TENSOR_INIT;
  mk2(&x, 4, 6);
  mk1(&y, 4);
  mk1(&a, 6);
  randu(&x, 2, -2, 2);
  setv(&y, (float[]){2, 3, 3, 2});
  setv(&a, (float[]){0, 0, 1, 1, 0, 0});
  lossfn f = {0, &x, &y, &a, 1, NULL};
  CHECK(grad_ok(&f, "cross_entropy active"));
  mk2(&g, 4, 6);
  double v, ref = 0;
  CHECK_OK(eg_cross_entropy(&v, &g, &x, &y, &a));
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 6; j++)
      if (j != 2 && j != 3) CHECK(eg_data(&g)[i * 6 + j] == 0.0f);
    /* Two active classes: the loss is a logistic loss on their difference. */
    float *r = eg_data(&x) + i * 6;
    int yi = (int)eg_data(&y)[i];
    double other = r[yi == 2 ? 3 : 2];
    ref += log1p(exp(other - r[yi]));
  }
  CHECK_NEAR(v, ref / 4, 1e-6);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&a);
  eg_tensor_release(&g);
}

/* Each sample under its own task's classes: the mean of the per-sample
** losses, each as eg_cross_entropy with that task's mask gives it; the
** gradient through gradcheck.h with its mutations. */
static void test_cross_entropy_with_per_sample_tasks(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, m = EG_TENSOR_INIT, t = EG_TENSOR_INIT, g = EG_TENSOR_INIT;
  eg_tensor row = EG_TENSOR_INIT, yr = EG_TENSOR_INIT, mr = EG_TENSOR_INIT;
  mk2(&x, 4, 6), mk1(&y, 4), mk2(&m, 3, 6), mk1(&t, 4), mk2(&g, 4, 6);
  randu(&x, 5, -2, 2);
  setv(&m, (float[]){1, 1, 0, 0, 0, 0, /**/ 0, 0, 1, 1, 0, 0, /**/ 0, 0, 0, 0, 1, 1});
  setv(&t, (float[]){1, 0, 2, 1});
  setv(&y, (float[]){3, 0, 5, 2});
  lossfn f = {4, &x, &y, &m, 1, &t};
  CHECK(grad_ok(&f, "cross_entropy per-sample tasks"));
  double v, ref = 0, one;
  CHECK_OK(eg_cross_entropy_tasks(&v, &g, &x, &y, &m, &t));
  for (int i = 0; i < 4; i++) {
    CHECK_OK(eg_narrow(&row, &x, 0, i, 1));
    CHECK_OK(eg_narrow(&yr, &y, 0, i, 1));
    CHECK_OK(eg_select(&mr, &m, 0, (int64_t)eg_data(&t)[i]));
    CHECK_OK(eg_cross_entropy(&one, NULL, &row, &yr, &mr));
    ref += one / 4;
    for (int j = 0; j < 6; j++) /* no gradient outside the sample's task */
      if (eg_data(&m)[(int)eg_data(&t)[i] * 6 + j] == 0) CHECK(eg_data(&g)[i * 6 + j] == 0.0f);
  }
  CHECK_NEAR(v, ref, 1e-9);
  /* a label outside its task, a task out of range, masks of the wrong width */
  eg_data(&y)[1] = 2;
  CHECK_ERR(eg_cross_entropy_tasks(&v, &g, &x, &y, &m, &t), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "not an active class of its task 0 (sample 1)") != NULL);
  eg_data(&y)[1] = 0, eg_data(&t)[2] = 3;
  CHECK_ERR(eg_cross_entropy_tasks(&v, &g, &x, &y, &m, &t), EG_ERANGE);
  CHECK(strstr(eg_errmsg(), "task 3 is not one of the 3 tasks") != NULL);
  eg_tensor m5 = EG_TENSOR_INIT;
  mk2(&m5, 3, 5);
  CHECK_ERR(eg_cross_entropy_tasks(&v, &g, &x, &y, &m5, &t), EG_ESHAPE);
  eg_tensor *all[] = {&x, &y, &m, &t, &g, &row, &yr, &mr, &m5};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
}

static void test_cross_entropy_values_by_hand(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, g = EG_TENSOR_INIT;
  mk2(&x, 2, 3);
  mk1(&y, 2);
  mk2(&g, 2, 3);
  /* Row 0: equal logits -> log 3. Row 1: logits (0, ln 2, ln 5), label 2 -> -log(5/8). */
  setv(&x, (float[]){1, 1, 1, 0, (float)log(2.0), (float)log(5.0)});
  setv(&y, (float[]){0, 2});
  double v;
  CHECK_OK(eg_cross_entropy(&v, &g, &x, &y, NULL));
  CHECK_NEAR(v, (log(3.0) - log(5.0 / 8)) / 2, 1e-6);
  /* grad = (softmax - onehot) / B */
  CHECK_NEAR(eg_data(&g)[0], (1.0 / 3 - 1) / 2, 1e-6);
  CHECK_NEAR(eg_data(&g)[1], (1.0 / 3) / 2, 1e-6);
  CHECK_NEAR(eg_data(&g)[3], (1.0 / 8) / 2, 1e-6);
  CHECK_NEAR(eg_data(&g)[4], (2.0 / 8) / 2, 1e-6);
  CHECK_NEAR(eg_data(&g)[5], (5.0 / 8 - 1) / 2, 1e-6);
  /* Huge logits stay finite (log-sum-exp). */
  setv(&x, (float[]){1000, -1000, 0, 80, 90, 100});
  CHECK_OK(eg_cross_entropy(&v, &g, &x, &y, NULL));
  CHECK(isfinite(v));
  CHECK_NEAR(v, (0 + log1p(exp(-10.0) + exp(-20.0))) / 2, 1e-5);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&g);
}

static void test_cross_entropy_rejects_bad_labels_with_clear_messages(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, a = EG_TENSOR_INIT;
  mk2(&x, 4, 10);
  mk1(&y, 4);
  double v;
  setv(&y, (float[]){0, 1, 2, 12});
  CHECK_ERR(eg_cross_entropy(&v, NULL, &x, &y, NULL), EG_ERANGE);
  CHECK(strcmp(eg_errmsg(), "cross_entropy: label 12 out of range for 10 classes (sample 3)") == 0);
  setv(&y, (float[]){0, -1, 2, 3});
  CHECK_ERR(eg_cross_entropy(&v, NULL, &x, &y, NULL), EG_ERANGE);
  setv(&y, (float[]){0, 1.5f, 2, 3});
  CHECK_ERR(eg_cross_entropy(&v, NULL, &x, &y, NULL), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "label 1.5 is not an integer (sample 1)") != NULL);
  setv(&y, (float[]){0, NAN, 2, 3});
  CHECK_ERR(eg_cross_entropy(&v, NULL, &x, &y, NULL), EG_EINVAL);
  /* A label outside the active classes would have infinite loss. */
  setv(&y, (float[]){0, 1, 2, 3});
  mk1(&a, 10);
  eg_data(&a)[0] = eg_data(&a)[1] = 1;
  CHECK_ERR(eg_cross_entropy(&v, NULL, &x, &y, &a), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "label 2 is not an active class (sample 2)") != NULL);
  /* Base 1 for the Lua bindings. */
  CHECK_ERR(eg_check_labels(&y, 4, 10, &a, 1, "ce"), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "(sample 3)") != NULL);
  eg_fill(&a, 0);
  CHECK_ERR(eg_cross_entropy(&v, NULL, &x, &y, &a), EG_EINVAL);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&a);
}

static void test_losses_reject_mismatched_shapes(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, t = EG_TENSOR_INIT, g = EG_TENSOR_INIT, a = EG_TENSOR_INIT;
  mk2(&x, 4, 10);
  mk1(&y, 3);
  mk2(&t, 4, 9);
  mk2(&g, 4, 9);
  mk1(&a, 9);
  double v;
  CHECK_ERR(eg_cross_entropy(&v, NULL, &x, &y, NULL), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "labels") != NULL);
  mk1(&y, 4);
  CHECK_ERR(eg_cross_entropy(&v, &g, &x, &y, NULL), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "gradient buffer [4x9] does not match input [4x10]") != NULL);
  CHECK_ERR(eg_cross_entropy(&v, NULL, &x, &y, &a), EG_ESHAPE);
  CHECK_ERR(eg_mse(&v, NULL, &x, &t), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "mse: input [4x10] does not match target [4x9]") != NULL);
  CHECK_ERR(eg_bce_logits(&v, NULL, &x, &t), EG_ESHAPE);
  CHECK_ERR(eg_kl_distill(&v, NULL, &x, &t, 2, NULL), EG_ESHAPE);
  CHECK_ERR(eg_kl_distill(&v, NULL, &x, &x, 0, NULL), EG_EINVAL);
  CHECK_ERR(eg_cross_entropy(&v, NULL, &y, &y, NULL), EG_ESHAPE); /* 1-D logits */
  eg_tensor empty = EG_TENSOR_INIT;
  CHECK_ERR(eg_mse(&v, NULL, &empty, &t), EG_ESTATE);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&t);
  eg_tensor_release(&g);
  eg_tensor_release(&a);
}

static void test_mse_value_and_gradient(void) {
  eg_tensor x = EG_TENSOR_INIT, t = EG_TENSOR_INIT, g = EG_TENSOR_INIT;
  mk2(&x, 2, 2);
  mk2(&t, 2, 2);
  mk2(&g, 2, 2);
  setv(&x, (float[]){1, 2, 3, 4});
  setv(&t, (float[]){1, 0, 0, 8});
  double v;
  CHECK_OK(eg_mse(&v, &g, &x, &t));
  CHECK_NEAR(v, (0 + 4 + 9 + 16) / 4.0, 1e-9);
  CHECK_NEAR(eg_data(&g)[1], 2 * 2 / 4.0, 1e-7);
  CHECK_NEAR(eg_data(&g)[3], 2 * -4 / 4.0, 1e-7);
  randu(&x, 3, -1, 1);
  randu(&t, 4, -1, 1);
  lossfn f = {1, &x, &t, NULL, 1, NULL};
  CHECK(grad_ok(&f, "mse"));
  eg_tensor_release(&x);
  eg_tensor_release(&t);
  eg_tensor_release(&g);
}

static void test_bce_with_logits_value_gradient_and_stability(void) {
  eg_tensor x = EG_TENSOR_INIT, t = EG_TENSOR_INIT, g = EG_TENSOR_INIT;
  mk2(&x, 1, 3);
  mk2(&t, 1, 3);
  mk2(&g, 1, 3);
  setv(&x, (float[]){0, 2, -200});
  setv(&t, (float[]){1, 0, 0});
  double v;
  CHECK_OK(eg_bce_logits(&v, &g, &x, &t));
  /* log 2, log(1+e^2), ~0 */
  CHECK_NEAR(v, (log(2.0) + log1p(exp(2.0)) + 0) / 3, 1e-7);
  CHECK_NEAR(eg_data(&g)[0], (0.5 - 1) / 3, 1e-7);
  CHECK_NEAR(eg_data(&g)[1], (1 / (1 + exp(-2.0))) / 3, 1e-7);
  CHECK(isfinite(eg_data(&g)[2]));
  setv(&t, (float[]){1, 0, 1.5f});
  CHECK_ERR(eg_bce_logits(&v, &g, &x, &t), EG_EINVAL);
  eg_tensor_release(&x);
  eg_tensor_release(&t);
  eg_tensor_release(&g);
  mk2(&x, 3, 4);
  mk2(&t, 3, 4);
  randu(&x, 5, -3, 3);
  randu(&t, 6, 0, 1);
  lossfn f = {2, &x, &t, NULL, 1, NULL};
  CHECK(grad_ok(&f, "bce_logits"));
  eg_tensor_release(&x);
  eg_tensor_release(&t);
}

static void test_kl_distill_matches_definition_and_finite_differences(void) {
  eg_tensor s = EG_TENSOR_INIT, t = EG_TENSOR_INIT, a = EG_TENSOR_INIT;
  mk2(&s, 3, 5);
  mk2(&t, 3, 5);
  mk1(&a, 5);
  randu(&s, 7, -2, 2);
  randu(&t, 8, -2, 2);
  const double T = 2;
  double v, ref = 0;
  CHECK_OK(eg_kl_distill(&v, NULL, &s, &t, T, NULL));
  for (int i = 0; i < 3; i++) {
    double p[5], q[5], zp = 0, zq = 0;
    for (int j = 0; j < 5; j++) {
      zp += p[j] = exp(eg_data(&t)[i * 5 + j] / T);
      zq += q[j] = exp(eg_data(&s)[i * 5 + j] / T);
    }
    for (int j = 0; j < 5; j++) ref += p[j] / zp * log((p[j] / zp) / (q[j] / zq));
  }
  CHECK_NEAR(v, ref / 3 * T * T, 1e-6);
  /* Identical logits: no divergence. */
  CHECK_OK(eg_kl_distill(&v, NULL, &t, &t, T, NULL));
  CHECK_NEAR(v, 0, 1e-9);
  lossfn f = {3, &s, &t, NULL, T, NULL};
  CHECK(grad_ok(&f, "kl_distill"));
  setv(&a, (float[]){1, 1, 0, 1, 0});
  lossfn fa = {3, &s, &t, &a, 3.5, NULL};
  CHECK(grad_ok(&fa, "kl_distill active"));
  eg_tensor_release(&s);
  eg_tensor_release(&t);
  eg_tensor_release(&a);
}

static void test_accuracy_counts_argmax_over_active_classes(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, a = EG_TENSOR_INIT;
  mk2(&x, 3, 4);
  mk1(&y, 3);
  mk1(&a, 4);
  setv(&x, (float[]){5, 1, 0, 0, /**/ 0, 2, 3, 1, /**/ 9, 0, 0, 8});
  setv(&y, (float[]){0, 1, 3});
  int64_t n;
  CHECK_OK(eg_argmax_accuracy(&n, &x, &y, NULL));
  CHECK(n == 1);
  setv(&a, (float[]){0, 1, 0, 1});
  CHECK_OK(eg_argmax_accuracy(&n, &x, &y, &a));
  CHECK(n == 2); /* row 1 -> class 1, row 2 -> class 3 */
  setv(&y, (float[]){0, 1, 4});
  CHECK_ERR(eg_argmax_accuracy(&n, &x, &y, NULL), EG_ERANGE);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&a);
}

static void test_losses_do_not_allocate(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, g = EG_TENSOR_INIT, t = EG_TENSOR_INIT;
  mk2(&x, 8, 10);
  mk1(&y, 8);
  mk2(&g, 8, 10);
  mk2(&t, 8, 10);
  randu(&x, 9, -1, 1);
  double v;
  int64_t n;
  uint64_t before = eg_alloc_count();
  CHECK_OK(eg_cross_entropy(&v, &g, &x, &y, NULL));
  CHECK_OK(eg_mse(&v, &g, &x, &t));
  CHECK_OK(eg_bce_logits(&v, &g, &x, &t));
  CHECK_OK(eg_kl_distill(&v, &g, &x, &t, 2, NULL));
  CHECK_OK(eg_argmax_accuracy(&n, &x, &y, NULL));
  CHECK(eg_alloc_count() == before);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&g);
  eg_tensor_release(&t);
}

int main(void) {
  RUN(test_cross_entropy_gradient_matches_finite_differences);
  RUN(test_cross_entropy_with_active_classes_has_zero_gradient_elsewhere);
  RUN(test_cross_entropy_with_per_sample_tasks);
  RUN(test_cross_entropy_values_by_hand);
  RUN(test_cross_entropy_rejects_bad_labels_with_clear_messages);
  RUN(test_losses_reject_mismatched_shapes);
  RUN(test_mse_value_and_gradient);
  RUN(test_bce_with_logits_value_gradient_and_stability);
  RUN(test_kl_distill_matches_definition_and_finite_differences);
  RUN(test_accuracy_counts_argmax_over_active_classes);
  RUN(test_losses_do_not_allocate);
  return CHECK_DONE("loss");
}

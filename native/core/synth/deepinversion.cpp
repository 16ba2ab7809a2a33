// DeepInversion (Yin et al., CVPR 2020) and Adaptive DeepInversion. Defaults follow the
// published recipe in NVlabs/DeepInversion:
//   - Adam on the inputs, betas (0.5, 0.9) (deepinversion.py, setting_id 0/1), lr 0.25 with
//     the cosine policy and 100 warm-up iterations (README example: --lr 0.25; utils.lr_cosine_policy)
//   - BN loss weight r_feature = 0.01 (README example), first BN layer x10 (first_bn_multiplier)
//   - tv_l2 = 1e-4, tv_l1 = 0, l2 = 1e-5, CE (main_loss_multiplier) = 1 (imagenet_inversion.py)
//   - 2000 iterations per batch at full resolution (setting_id 1)
//   - random jitter (roll) and a batch flip per iteration; jitter 30 px on 224 px images,
//     scaled here to the input size (2 px on 28-32 px inputs, as the CIFAR-10 script)
//   - ADI: competition weight adi 0 by default (paper used 0.2 on ImageNet), JS at T = 3.
#include "core/synth/synth.h"

namespace dfkd {

InputSynthConfig deepinversion_config(const Json& spec, Teacher& teacher) {
  InputSynthConfig c;
  c.batch = 256;
  c.iterations = 2000;
  c.lr = 0.25;
  c.betas = {0.5, 0.9};
  c.lr_schedule = "cosine";
  c.jitter = 2;
  c.flip = true;
  c.ce = 1.0;
  c.bn = 0.01;
  c.first_bn_multiplier = 10.0;
  c.tv_l1 = 0.0;
  c.tv_l2 = 1e-4;
  c.l2 = 1e-5;
  c.adi = 0.0;
  c.adi_temperature = 3.0;
  apply_common(c, spec);
  if (c.bn <= 0) fail("E_CONFIG", "deepinversion needs a positive bn weight");
  return c;
}

}  // namespace dfkd

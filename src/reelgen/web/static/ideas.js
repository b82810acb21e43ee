// Prompt ideas per model (by id, then by family). Short, concrete shots that show what each model is good at.

const BY_MODEL = {
  "reelgen-demo": [
    "a red ball bounces on a black background",
    "a small blue square moves to the right",
    "a big yellow ring grows on a white background",
    "a green triangle falls down",
  ],
  "tiny-random-wan": [
    "a red fox running through snow",
    "waves rolling onto a beach at sunset",
    "a paper boat drifting down a rainy street",
  ],
};

const BY_FAMILY = {
  wan: [
    "a red fox running through fresh snow, low camera, morning light",
    "slow dolly shot through a neon-lit alley in the rain",
    "a hummingbird hovering over a purple flower, macro, shallow depth of field",
    "time-lapse of clouds rolling over mountain peaks",
  ],
};

const GENERIC = [
  "a cat stretching in a patch of sunlight",
  "ocean waves crashing against rocks, slow motion",
  "a hot air balloon rising over green hills at dawn",
];

export function ideasFor(model) {
  if (!model) return GENERIC;
  return BY_MODEL[model.id] || BY_FAMILY[model.family] || GENERIC;
}

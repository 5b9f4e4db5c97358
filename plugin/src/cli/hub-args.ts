// The Hub options shared by push, pull and serve: --hub-url, --token, --cache-dir (see hub/settings.ts
// for the environment variables they override).

import { DEFAULT_HUB_URL, hubSettings, type HubSettings } from "../hub/settings.js";
import type { CommandOptions, OptionValues } from "./command.js";

const HUB = "Hub options";

export const HUB_OPTIONS = {
  "hub-url": {
    type: "string",
    value: "URL",
    description: "the Hub's address",
    defaultText: `$HF_ENDPOINT, else ${DEFAULT_HUB_URL}`,
    group: HUB,
  },
  token: {
    type: "string",
    value: "T",
    description: "Hub access token (never printed)",
    defaultText: "$HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, else the token file ($HF_TOKEN_PATH, else $HF_HOME/token); else anonymous",
    group: HUB,
  },
  "cache-dir": {
    type: "string",
    value: "DIR",
    description: "the Hugging Face cache folder, shared with the Python and JS Hub clients (HF_HUB_OFFLINE=1: cache only)",
    defaultText: "$HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub",
    group: HUB,
  },
} as const satisfies CommandOptions;

type HubValues = Pick<OptionValues<typeof HUB_OPTIONS>, keyof typeof HUB_OPTIONS>;

/** Takes the values of a command whose options include HUB_OPTIONS. */
export function hubSettingsFromArgs(values: HubValues): HubSettings {
  return hubSettings({ hubUrl: values["hub-url"], token: values.token, cacheDir: values["cache-dir"] });
}

// The Hub options shared by push, pull and serve: --hub-url, --token, --cache-dir (see hub/settings.ts
// for the environment variables they override).

import { hubSettings, type HubSettings } from "../hub/settings.js";
import type { OptionValues } from "./command.js";

export const HUB_OPTIONS = {
  "hub-url": { type: "string" },
  token: { type: "string" },
  "cache-dir": { type: "string" },
} as const;

export const HUB_USAGE =
  "  Hub: --hub-url (else HF_ENDPOINT), --token (else HF_TOKEN or the HF token file), --cache-dir (else HF_HUB_CACHE, HF_HOME/hub); HF_HUB_OFFLINE=1: cache only";

type HubValues = Pick<OptionValues<typeof HUB_OPTIONS>, keyof typeof HUB_OPTIONS>;

/** Takes the values of a command whose options include HUB_OPTIONS. */
export function hubSettingsFromArgs(values: HubValues): HubSettings {
  return hubSettings({ hubUrl: values["hub-url"], token: values.token, cacheDir: values["cache-dir"] });
}

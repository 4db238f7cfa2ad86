// The config layer's public face: what the plan, the components and index.ts read. All of it is pure but
// static-files (it reads the sites the config points at) and expandHome.
export type { ConfigProblem } from "./problems";
export { ConfigError, formatPath } from "./problems";
export type { DeployEnvironment } from "./environment";
export { environmentProblems } from "./environment";
export type { RawConfigMap } from "./load";
export { loadConfig, rawConfigFromPulumi } from "./load";
export { BACKUP_AGE_MARGIN_HOURS, isPinnedImage, namespaceProblems, RESERVED_APP_NAMES, routeKeys, timeZoneProblem } from "./rules";
export type { AppConfig, RawConfig, StackConfig } from "./schema";
export { configSchema, LOCAL_STACKS, PROJECT, STATIC_SITE_PORT } from "./schema";
export { durationSeconds, sizeToMiB } from "./units";

// Errors of the development Hub, answered in the Hub's shape (see http.ts sendError).

export class HubError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
    /** More fields of the JSON error body (the Hub's 409 on create carries the repo url). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const repoNotFound = () => new HubError(404, "Repository not found", "RepoNotFound");
export const revisionNotFound = (rev: string) => new HubError(404, `Invalid rev id: ${rev}`, "RevisionNotFound");
export const entryNotFound = (path: string) => new HubError(404, `Entry not found: ${path}`, "EntryNotFound");

// The gallery: videos a moderator approved for publication, most recently published first (GET /v1/gallery,
// paged); their files come through /v1/gallery/{id}/content, which anyone signed in may read.

import { api } from "./api.js";
import { pagedGrid } from "./grid.js";

pagedGrid((page) => api.gallery(page), { gallery: true });

import { readFileSync } from 'node:fs';
import express, { type Router } from 'express';
import { createOpenApiDocument } from './openapi-document.js';

/** `GET /openapi.json`: billfold's HTTP contract, built once from the schemas the routes validate with. */
export function createOpenApiRouter(): Router {
  // package.json sits one folder above both src/ and dist/.
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  const document = JSON.stringify(createOpenApiDocument(version));
  const router = express.Router();
  router.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(document);
  });
  return router;
}

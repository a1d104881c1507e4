/**
 * One wording for JSON Schema (ajv) failures, so every config error names the field the same way:
 * "<path> <message>", plus the unknown key or the allowed values where ajv knows them, joined by "; ".
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { PlexusError } from './errors';

export function schemaProblems(errors: readonly ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .filter((e) => e.keyword !== 'propertyNames') // the error naming the key comes with it
    .map((e) => {
      const p = e.params as Record<string, unknown>;
      if ('propertyName' in e) return `${e.instancePath || '/'} key "${String(e.propertyName)}" ${e.message}`;
      const extra = 'additionalProperty' in p ? ` "${String(p['additionalProperty'])}"`
        : 'allowedValues' in p ? ` (${JSON.stringify(p['allowedValues'])})`
          : 'allowedValue' in p ? ` (${JSON.stringify(p['allowedValue'])})` : '';
      return `${e.instancePath || '/'} ${e.message}${extra}`;
    })
    .join('; ');
}

/**
 * A daemon config section checked by its compiled schema: a copy of `raw` (absent: `{}`) with the schema's
 * defaults filled in, or InvalidConfig "<where>: <problems>" naming the field.
 */
export function validSection<T>(validate: ValidateFunction, raw: unknown, where: string): T {
  const conf = structuredClone(raw ?? {});
  if (!validate(conf)) throw new PlexusError('InvalidConfig', `${where}: ${schemaProblems(validate.errors)}`);
  return conf as T;
}

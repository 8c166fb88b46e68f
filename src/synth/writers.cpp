#include "s2crop/synth/writers.hpp"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <gdal_priv.h>
#include <ogrsf_frmts.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/sentinel2/bands.hpp"

namespace s2crop::synth {

namespace fs = std::filesystem;

void make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw OutputError(path, "cannot create directory: " + ec.message());
}

namespace {

std::string jnum(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}


const geo::Grid& band_grid(const TileSpec& tile, int b) { return synth_band_is_10m(b) ? tile.grid10 : tile.grid20; }

void write_jp2(const std::string& path, const geo::Grid& grid, GDALDataType type, const void* data) {
  geo::init_gdal();
  GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  GDALDriver* jp2 = GetGDALDriverManager()->GetDriverByName("JP2OpenJPEG");
  if (!mem || !jp2) throw OutputError(path, "GDAL driver JP2OpenJPEG is not available (use GeoTIFF: no --safe-jp2)");
  std::unique_ptr<GDALDataset> src(mem->Create("", grid.width, grid.height, 1, type, nullptr));
  src->SetGeoTransform(const_cast<double*>(grid.geotransform.data()));
  src->SetProjection(grid.crs_wkt.c_str());
  if (src->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, grid.width, grid.height, const_cast<void*>(data), grid.width,
                                      grid.height, type, 0, 0, nullptr) != CE_None)
    throw OutputError(path, "cannot fill in-memory raster");
  src->GetRasterBand(1)->SetNoDataValue(0);
  const char* opts[] = {"QUALITY=100", "REVERSIBLE=YES", "YCBCR420=NO", nullptr};
  StagedFile staged(path, ".tmp.jp2");
  CPLErrorReset();
  GDALDataset* out =
      jp2->CreateCopy(staged.path().c_str(), src.get(), FALSE, const_cast<char**>(opts), nullptr, nullptr);
  if (!out) throw OutputError(path, std::string("cannot write JPEG2000: ") + CPLGetLastErrorMsg());
  GDALClose(out);
  VSIUnlink((staged.path() + ".aux.xml").c_str());
  staged.commit();
}

std::string platform_name(const Acquisition& a) { return std::string("sentinel-2") + (a.platform == 'A' ? "a" : "b"); }

}  // namespace

std::string stac_item_dir(const std::string& out_dir, const TileSpec& tile, const Acquisition& acq) {
  return out_dir + "/stac/" + tile.name + "/" + std::to_string(acq.date.year) + "/" + std::to_string(acq.date.month) +
         "/" + acq.stac_id(tile);
}

std::string write_stac_item(const std::string& out_dir, const TileSpec& tile, const Acquisition& acq, const Scene& scene) {
  std::string dir = stac_item_dir(out_dir, tile, acq);
  make_dirs(dir);
  const auto& names = synth_band_names();
  for (int b = 0; b < kSynthBands; ++b) {
    geo::WriteOptions o;
    o.driver = "COG";
    o.compress = "DEFLATE";
    o.block_size = synth_band_is_10m(b) ? 256 : 128;  // a 256 px block at 10 m reads whole 20 m tiles
    o.overviews = false;
    o.has_nodata = true;
    o.nodata = 0;
    geo::write_raster(dir + "/" + names[static_cast<size_t>(b)] + ".tif", band_grid(tile, b), geo::PixelType::UInt16,
                      {{scene.dn[static_cast<size_t>(b)].data(), names[static_cast<size_t>(b)]}}, o);
  }
  {
    geo::WriteOptions o;
    o.driver = "COG";
    o.block_size = 128;
    o.overviews = false;
    o.has_nodata = true;
    o.nodata = 0;
    geo::write_raster(dir + "/SCL.tif", tile.grid20, geo::PixelType::UInt8, {{scene.scl.data(), "SCL"}}, o);
  }

  // The item (Earth Search v1 style).
  std::string id = acq.stac_id(tile);
  auto ring = tile.footprint_lonlat();
  double minx = 1e9, miny = 1e9, maxx = -1e9, maxy = -1e9;
  std::string coords;
  for (auto& p : ring) {
    minx = std::min(minx, p[0]), maxx = std::max(maxx, p[0]);
    miny = std::min(miny, p[1]), maxy = std::max(maxy, p[1]);
    coords += std::string(coords.empty() ? "" : ", ") + "[" + jnum(p[0]) + ", " + jnum(p[1]) + "]";
  }
  const int offset = acq.boa_offset();
  std::ostringstream j;
  j << "{\n  \"type\": \"Feature\",\n  \"stac_version\": \"1.0.0\",\n"
    << "  \"stac_extensions\": [\"https://stac-extensions.github.io/eo/v1.1.0/schema.json\", "
       "\"https://stac-extensions.github.io/projection/v1.1.0/schema.json\", "
       "\"https://stac-extensions.github.io/raster/v1.1.0/schema.json\", "
       "\"https://stac-extensions.github.io/mgrs/v1.0.0/schema.json\"],\n"
    << "  \"id\": " << json_string(id) << ",\n"
    << "  \"collection\": \"sentinel-2-l2a\",\n"
    << "  \"bbox\": [" << jnum(minx) << ", " << jnum(miny) << ", " << jnum(maxx) << ", " << jnum(maxy) << "],\n"
    << "  \"geometry\": {\"type\": \"Polygon\", \"coordinates\": [[" << coords << "]]},\n"
    << "  \"properties\": {\n"
    << "    \"datetime\": " << json_string(acq.datetime()) << ",\n"
    << "    \"platform\": " << json_string(platform_name(acq)) << ",\n"
    << "    \"constellation\": \"sentinel-2\",\n"
    << "    \"instruments\": [\"msi\"],\n"
    << "    \"mgrs:utm_zone\": " << tile.zone << ",\n"
    << "    \"mgrs:latitude_band\": " << json_string(std::string(1, tile.latitude_band)) << ",\n"
    << "    \"mgrs:grid_square\": " << json_string(tile.grid_square) << ",\n"
    << "    \"s2:processing_baseline\": " << json_string(acq.processing_baseline()) << ",\n"
    << "    \"s2:product_uri\": " << json_string(acq.safe_name(tile)) << ",\n"
    << "    \"s2:nodata_pixel_percentage\": " << jnum(scene.nodata_percent) << ",\n"
    << "    \"earthsearch:boa_offset_applied\": false,\n"
    << "    \"proj:epsg\": " << tile.epsg << ",\n"
    << "    \"eo:cloud_cover\": " << jnum(scene.cloud_cover_percent) << ",\n"
    << "    \"s2crop:synthetic\": true\n"
    << "  },\n"
    << "  \"links\": [{\"rel\": \"self\", \"href\": \"./" << id << ".json\", \"type\": \"application/geo+json\"}],\n"
    << "  \"assets\": {\n";
  auto transform = [](const geo::Grid& g) {
    return "[" + jnum(g.geotransform[1]) + ", 0, " + jnum(g.geotransform[0]) + ", 0, " + jnum(g.geotransform[5]) +
           ", " + jnum(g.geotransform[3]) + "]";
  };
  bool first = true;
  for (const auto& spec : sentinel2::all_bands()) {
    int b = -1;
    for (int k = 0; k < kSynthBands; ++k)
      if (spec.name == names[static_cast<size_t>(k)]) b = k;
    if (b < 0) continue;  // B01, B09: not generated
    const geo::Grid& g = band_grid(tile, b);
    j << (first ? "" : ",\n") << "    " << json_string(spec.stac_key) << ": {\"href\": \"./" << spec.name << ".tif\", "
      << "\"type\": \"image/tiff; application=geotiff; profile=cloud-optimized\", \"title\": "
      << json_string(spec.name + " (" + spec.common_name + ") - " + std::to_string(spec.resolution_m) + "m") << ", "
      << "\"eo:bands\": [{\"name\": " << json_string(spec.name) << ", \"common_name\": " << json_string(spec.common_name)
      << ", \"center_wavelength\": " << jnum(spec.centre_nm / 1000.0) << "}], "
      << "\"gsd\": " << spec.resolution_m << ", \"proj:shape\": [" << g.height << ", " << g.width
      << "], \"proj:transform\": " << transform(g) << ", "
      << "\"raster:bands\": [{\"nodata\": 0, \"data_type\": \"uint16\", \"bits_per_sample\": 15, "
      << "\"spatial_resolution\": " << spec.resolution_m << ", \"scale\": 0.0001, \"offset\": "
      << (offset != 0 ? "-0.1" : "0") << "}], \"roles\": [\"data\", \"reflectance\"]}";
    first = false;
  }
  j << ",\n    \"scl\": {\"href\": \"./SCL.tif\", \"type\": \"image/tiff; application=geotiff; profile=cloud-optimized\", "
    << "\"title\": \"Scene classification map (SCL)\", \"gsd\": 20, \"proj:shape\": [" << tile.grid20.height << ", "
    << tile.grid20.width << "], \"proj:transform\": " << transform(tile.grid20) << ", "
    << "\"raster:bands\": [{\"nodata\": 0, \"data_type\": \"uint8\", \"spatial_resolution\": 20, \"unit\": \"none\"}], "
    << "\"roles\": [\"data\", \"reflectance\"]}\n  }\n}\n";
  std::string path = dir + "/" + id + ".json";
  write_text_atomically(path, j.str());
  return path;
}

std::string mtd_msil2a_xml(const TileSpec& tile, const Acquisition& acq, const Scene& scene, bool jp2) {
  const std::string safe = acq.safe_name(tile);
  const std::string stamp = acq.date.compact() + "T102031";
  const std::string granule = "L2A_T" + tile.name + "_A000000_" + stamp;
  const std::string iso = acq.date.iso();
  const int offset = acq.boa_offset();
  std::string baseline = acq.processing_baseline();
  std::ostringstream x;
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
    << "<n1:Level-2A_User_Product xmlns:n1=\"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd\" "
       "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
       "xsi:schemaLocation=\"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd\">\n"
    << "  <n1:General_Info>\n"
    << "    <Product_Info>\n"
    << "      <PRODUCT_START_TIME>" << iso << "T10:20:31.024Z</PRODUCT_START_TIME>\n"
    << "      <PRODUCT_STOP_TIME>" << iso << "T10:20:31.024Z</PRODUCT_STOP_TIME>\n"
    << "      <PRODUCT_URI>" << safe << "</PRODUCT_URI>\n"
    << "      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>\n"
    << "      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>\n"
    << "      <PROCESSING_BASELINE>" << baseline << "</PROCESSING_BASELINE>\n"
    << "      <PRODUCT_DOI>https://doi.org/10.5270/S2_-znk9xsj</PRODUCT_DOI>\n"
    << "      <GENERATION_TIME>" << iso << "T12:00:00.000000Z</GENERATION_TIME>\n"
    << "      <PREVIEW_IMAGE_URL>Not applicable</PREVIEW_IMAGE_URL>\n"
    << "      <PREVIEW_GEO_INFO>Not applicable</PREVIEW_GEO_INFO>\n"
    << "      <Datatake datatakeIdentifier=\"GS2" << acq.platform << "_" << stamp << "_000000_N" << baseline << "\">\n"
    << "        <SPACECRAFT_NAME>Sentinel-2" << acq.platform << "</SPACECRAFT_NAME>\n"
    << "        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>\n"
    << "        <DATATAKE_SENSING_START>" << iso << "T10:20:31.024Z</DATATAKE_SENSING_START>\n"
    << "        <SENSING_ORBIT_NUMBER>65</SENSING_ORBIT_NUMBER>\n"
    << "        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>\n"
    << "      </Datatake>\n"
    << "      <Query_Options completeSingleTile=\"true\">\n"
    << "        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>\n"
    << "      </Query_Options>\n"
    << "      <Product_Organisation>\n"
    << "        <Granule_List>\n"
    << "          <Granule datastripIdentifier=\"S2" << acq.platform << "_OPER_MSI_L2A_DS_SYNTH_" << stamp
    << "_N" << baseline << "\" granuleIdentifier=\"" << granule << "\" imageFormat=\""
    << (jp2 ? "JPEG2000" : "GeoTIFF") << "\">\n";
  for (int b = 0; b < kSynthBands; ++b) {
    std::string n = synth_band_names()[static_cast<size_t>(b)];
    std::string res = synth_band_is_10m(b) ? "10m" : "20m";
    x << "            <IMAGE_FILE>GRANULE/" << granule << "/IMG_DATA/R" << res << "/T" << tile.name << "_" << stamp << "_"
      << n << "_" << res << "</IMAGE_FILE>\n";
  }
  x << "            <IMAGE_FILE>GRANULE/" << granule << "/IMG_DATA/R20m/T" << tile.name << "_" << stamp
    << "_SCL_20m</IMAGE_FILE>\n"
    << "          </Granule>\n"
    << "        </Granule_List>\n"
    << "      </Product_Organisation>\n"
    << "    </Product_Info>\n"
    << "    <Product_Image_Characteristics>\n"
    << "      <Special_Values>\n        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>\n"
    << "        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>\n      </Special_Values>\n"
    << "      <Special_Values>\n        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>\n"
    << "        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>\n      </Special_Values>\n"
    << "      <Image_Display_Order>\n        <RED_CHANNEL>3</RED_CHANNEL>\n        <GREEN_CHANNEL>2</GREEN_CHANNEL>\n"
    << "        <BLUE_CHANNEL>1</BLUE_CHANNEL>\n      </Image_Display_Order>\n"
    << "      <QUANTIFICATION_VALUES_LIST>\n"
    << "        <BOA_QUANTIFICATION_VALUE unit=\"none\">" << sentinel2::kQuantification << "</BOA_QUANTIFICATION_VALUE>\n"
    << "        <AOT_QUANTIFICATION_VALUE unit=\"none\">1000.0</AOT_QUANTIFICATION_VALUE>\n"
    << "        <WVP_QUANTIFICATION_VALUE unit=\"cm\">1000.0</WVP_QUANTIFICATION_VALUE>\n"
    << "      </QUANTIFICATION_VALUES_LIST>\n"
    << "      <BOA_ADD_OFFSET_VALUES_LIST>\n";
  for (int id = 0; id <= 12; ++id) x << "        <BOA_ADD_OFFSET band_id=\"" << id << "\">" << offset << "</BOA_ADD_OFFSET>\n";
  x << "      </BOA_ADD_OFFSET_VALUES_LIST>\n"
    << "      <Spectral_Information_List>\n";
  static const char* all13[] = {"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"};
  static const int res13[] = {60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 60, 20, 20};
  for (int id = 0; id <= 12; ++id)
    x << "        <Spectral_Information bandId=\"" << id << "\" physicalBand=\"" << all13[id] << "\">\n"
      << "          <RESOLUTION>" << res13[id] << "</RESOLUTION>\n        </Spectral_Information>\n";
  x << "      </Spectral_Information_List>\n"
    << "    </Product_Image_Characteristics>\n"
    << "  </n1:General_Info>\n"
    << "  <n1:Quality_Indicators_Info>\n"
    << "    <Cloud_Coverage_Assessment>" << jnum(scene.cloud_cover_percent) << "</Cloud_Coverage_Assessment>\n"
    << "  </n1:Quality_Indicators_Info>\n"
    << "</n1:Level-2A_User_Product>\n";
  return x.str();
}

std::string write_safe_product(const std::string& out_dir, const TileSpec& tile, const Acquisition& acq,
                               const Scene& scene, bool jp2) {
  const std::string product = out_dir + "/safe/" + acq.safe_name(tile);
  const std::string stamp = acq.date.compact() + "T102031";
  const std::string img = product + "/GRANULE/L2A_T" + tile.name + "_A000000_" + stamp + "/IMG_DATA";
  make_dirs(img + "/R10m");
  make_dirs(img + "/R20m");
  const std::string ext = jp2 ? ".jp2" : ".tif";
  auto write_one = [&](const std::string& name, const std::string& res, const geo::Grid& grid, bool u8,
                       const void* data) {
    std::string path = img + "/R" + res + "/T" + tile.name + "_" + stamp + "_" + name + "_" + res + ext;
    if (jp2) {
      write_jp2(path, grid, u8 ? GDT_Byte : GDT_UInt16, data);
    } else {
      geo::WriteOptions o;
      o.driver = "GTiff";
      o.block_size = res == "10m" ? 256 : 128;
      o.has_nodata = true;
      o.nodata = 0;
      geo::write_raster(path, grid, u8 ? geo::PixelType::UInt8 : geo::PixelType::UInt16, {{data, name}}, o);
    }
  };
  for (int b = 0; b < kSynthBands; ++b)
    write_one(synth_band_names()[static_cast<size_t>(b)], synth_band_is_10m(b) ? "10m" : "20m", band_grid(tile, b),
              false, scene.dn[static_cast<size_t>(b)].data());
  write_one("SCL", "20m", tile.grid20, true, scene.scl.data());
  // The metadata last: a product folder with its MTD file is complete.
  write_text_atomically(product + "/MTD_MSIL2A.xml", mtd_msil2a_xml(tile, acq, scene, jp2));
  return product;
}

void write_parcels(const std::string& path, const std::vector<TileSpec>& tiles, const std::vector<FieldLayout>& layouts) {
  geo::init_gdal();
  GDALDriver* drv = GetGDALDriverManager()->GetDriverByName("GPKG");
  if (!drv) throw OutputError(path, "GDAL driver GPKG is not available");
  // Declared before the dataset, so that a failure closes the dataset before its temporary is removed.
  StagedFile staged(path, ".tmp.gpkg");
  VSIUnlink(staged.path().c_str());  // the GPKG driver refuses to create over a temporary left by a killed run
  CPLErrorReset();
  std::unique_ptr<GDALDataset> ds(drv->Create(staged.path().c_str(), 0, 0, 0, GDT_Unknown, nullptr));
  if (!ds) throw OutputError(path, std::string("cannot create GeoPackage: ") + CPLGetLastErrorMsg());
  for (size_t t = 0; t < tiles.size(); ++t) {
    const TileSpec& tile = tiles[t];
    OGRSpatialReference srs;
    srs.importFromEPSG(tile.epsg);
    srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    OGRLayer* layer = ds->CreateLayer(tile.name.c_str(), &srs, wkbPolygon, nullptr);
    if (!layer) throw OutputError(path, "cannot create layer " + tile.name + ": " + CPLGetLastErrorMsg());
    OGRFieldDefn f1("parcel_id", OFTInteger), f2("class_id", OFTInteger), f3("class_name", OFTString);
    if (layer->CreateField(&f1) != OGRERR_NONE || layer->CreateField(&f2) != OGRERR_NONE ||
        layer->CreateField(&f3) != OGRERR_NONE)
      throw OutputError(path, "cannot create the fields of layer " + tile.name);
    if (layer->StartTransaction() != OGRERR_NONE) throw OutputError(path, "cannot start a transaction");
    const auto& g = tile.grid10.geotransform;
    for (const Unit& u : layouts[t].units) {
      if (u.type != UnitType::Parcel) continue;
      OGRFeature feat(layer->GetLayerDefn());
      feat.SetField("parcel_id", u.parcel_id);
      feat.SetField("class_id", u.class_id);
      feat.SetField("class_name", crop_class(u.class_id).name.c_str());
      double x0 = g[0] + g[1] * u.x0, x1 = g[0] + g[1] * (u.x0 + u.width);
      double y0 = g[3] + g[5] * u.y0, y1 = g[3] + g[5] * (u.y0 + u.height);
      OGRLinearRing ring;
      ring.addPoint(x0, y0);
      ring.addPoint(x0, y1);
      ring.addPoint(x1, y1);
      ring.addPoint(x1, y0);
      ring.addPoint(x0, y0);
      OGRPolygon poly;
      poly.addRing(&ring);
      feat.SetGeometry(&poly);
      if (layer->CreateFeature(&feat) != OGRERR_NONE)
        throw OutputError(path, "cannot write parcel " + std::to_string(u.parcel_id) + " of " + tile.name);
    }
    if (layer->CommitTransaction() != OGRERR_NONE) throw OutputError(path, "cannot commit layer " + tile.name);
  }
  ds.reset();
  staged.commit();
}

void write_labels(const std::string& out_dir, const TileSpec& tile, const FieldLayout& layout) {
  std::string dir = out_dir + "/labels";
  make_dirs(dir);
  auto cls = layout.class_raster();
  auto parcels = layout.parcel_raster();
  geo::WriteOptions o;
  o.driver = "COG";
  o.block_size = 256;
  o.has_nodata = true;
  o.nodata = kNoCropLabel;
  o.overviews = false;
  geo::write_raster(dir + "/" + tile.name + "_class.tif", tile.grid10, geo::PixelType::UInt8, {{cls.data(), "class"}}, o);
  o.nodata = 0;
  geo::write_raster(dir + "/" + tile.name + "_parcel.tif", tile.grid10, geo::PixelType::UInt32,
                    {{parcels.data(), "parcel"}}, o);
}

void write_region_json(const std::string& path, const Region& region, const std::vector<FieldLayout>& layouts) {
  const SynthConfig& c = region.config;
  std::ostringstream j;
  j << "{\n  \"generator\": \"s2crop synth\",\n  \"seed\": " << c.seed << ",\n"
    << "  \"start\": " << json_string(c.start.iso()) << ",\n  \"days\": " << c.days << ",\n  \"revisit\": " << c.revisit
    << ",\n  \"gap_fraction\": " << jnum(c.gap_fraction) << ",\n  \"cloud_cover\": " << jnum(c.cloud_cover)
    << ",\n  \"size\": " << c.size << ",\n  \"layout\": " << json_string(layout_name(c.layout))
    << ",\n  \"safe_jp2\": " << (c.safe_jp2 ? "true" : "false") << ",\n";
  // Only when set: the default region.json stays as it was.
  if (c.subset_at) j << "  \"subset_at\": [" << jnum((*c.subset_at)[0]) << ", " << jnum((*c.subset_at)[1]) << "],\n";
  j << "  \"bands\": [";
  for (int b = 0; b < kSynthBands; ++b) j << (b ? ", " : "") << json_string(synth_band_names()[static_cast<size_t>(b)]);
  j << "],\n  \"classes\": [\n";
  for (const auto& k : crop_classes()) {
    char rgb[8];
    std::snprintf(rgb, sizeof rgb, "#%02x%02x%02x", k.r, k.g, k.b);
    j << "    {\"id\": " << k.id << ", \"name\": " << json_string(k.name) << ", \"color\": " << json_string(rgb) << "}"
      << (k.id + 1 < kCropClassCount ? ",\n" : "\n");
  }
  j << "  ],\n  \"tiles\": [\n";
  for (size_t t = 0; t < region.tiles.size(); ++t) {
    const TileSpec& tile = region.tiles[t];
    const auto& g = tile.grid10.geotransform;
    std::array<int, 16> counts{};
    for (const Unit& u : layouts[t].units)
      if (u.type == UnitType::Parcel) ++counts[static_cast<size_t>(u.class_id)];
    j << "    {\"name\": " << json_string(tile.name) << ", \"epsg\": " << tile.epsg << ", \"width\": " << tile.grid10.width
      << ", \"height\": " << tile.grid10.height << ", \"geotransform\": [" << jnum(g[0]) << ", " << jnum(g[1]) << ", "
      << jnum(g[2]) << ", " << jnum(g[3]) << ", " << jnum(g[4]) << ", " << jnum(g[5]) << "],\n"
      << "     \"parcels\": " << layouts[t].parcel_count() << ", \"parcels_per_class\": [";
    for (int k = 0; k < 16; ++k) j << (k ? ", " : "") << counts[static_cast<size_t>(k)];
    j << "],\n     \"acquisitions\": [\n";
    bool first = true;
    for (const Acquisition& a : region.acquisitions) {
      if (a.tile != tile.index) continue;
      j << (first ? "" : ",\n") << "       {\"date\": " << json_string(a.date.iso()) << ", \"platform\": "
        << json_string(platform_name(a)) << ", \"id\": " << json_string(a.stac_id(tile)) << ", \"safe\": " << json_string(a.safe_name(tile))
        << ", \"boa_offset\": " << a.boa_offset() << ", \"cloud_target\": " << jnum(std::round(a.cloud_target * 1000) / 1000)
        << "}";
      first = false;
    }
    j << "\n     ]}" << (t + 1 < region.tiles.size() ? ",\n" : "\n");
  }
  j << "  ]\n}\n";
  write_text_atomically(path, j.str());
}

}  // namespace s2crop::synth
